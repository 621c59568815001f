#!/bin/sh
# Recreate data/fortunes/ from Debian's fortunes-min package (1:1.99.1-7.3):
#   apt-get install fortunes-min && sh data/fortunes/make_fortunes.sh
# Each category file is copied unchanged into its own class folder, as <category>.txt.
set -eu
source_dir=${FORTUNES_DIR:-/usr/share/games/fortunes}
here=$(cd "$(dirname "$0")" && pwd)
for category in fortunes literature riddles; do
    if [ ! -f "$source_dir/$category" ]; then
        echo "$source_dir/$category is missing: install Debian's fortunes-min package" >&2
        exit 1
    fi
    mkdir -p "$here/$category"
    cp "$source_dir/$category" "$here/$category/$category.txt"
    echo "$category: $(grep -c '^%$' "$here/$category/$category.txt") records"
done
