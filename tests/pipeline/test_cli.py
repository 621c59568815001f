"""The CLI's cheap commands stay cheap."""

import subprocess
import sys

from tests.conftest import REPO


def test_status_reads_cache_keys_without_importing_tensorflow(tmp_path):
    """`edgepipe status` hashes every stage's code to show what would re-run; that must not
    import TensorFlow (seconds) through a package such as models/."""
    script = (
        "import sys\n"
        "from edgepipe import cli\n"
        f"code = cli.main(['status', 'configs/quickstart.toml', '--root', {str(tmp_path)!r}])\n"
        "heavy = sorted(name for name in ('tensorflow', 'tf_keras', 'apache_beam') "
        "if name in sys.modules)\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and "will run" in result.stdout
    assert "HEAVY []" in result.stdout


def test_the_cli_prints_the_stages_of_the_dag_and_only_those(capsys):
    """The run table follows the summary (DAG order); what a stage prints below it is keyed
    by stage names that must be the DAG's (a renamed stage would otherwise go silent)."""
    from edgepipe import cli
    from edgepipe.pipeline import dag

    names = [node.stage for node in dag.CLASSIFICATION]
    assert set(cli.STAGE_LINES) <= set(names) and "tune" in cli.STAGE_LINES
    summary = {"run_id": "r", "status": "succeeded", "seconds": 1.0, "root": "/root",
               "stages": [{"name": name, "status": "cached", "seconds": 0.0, "metrics": {},
                           "artifacts": {}} for name in names]}
    cli.print_summary(summary)
    table = capsys.readouterr().out.splitlines()[2:2 + len(names)]
    assert [line.split()[0] for line in table] == names
    assert len({line.index("cached") for line in table}) == 1  # one column for every name
