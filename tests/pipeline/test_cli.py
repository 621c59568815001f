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
