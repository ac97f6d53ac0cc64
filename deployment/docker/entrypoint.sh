#!/bin/sh
# The image's entrypoint: the README's commands, unchanged. `botloom "$@"`, `serve` by default:
#   (no arguments)         -> botloom serve
#   --port 3979            -> botloom serve --port 3979
#   model-server --port 8000, chat, ... -> botloom model-server --port 8000, ...
# exec, so botloom is PID 1's process and gets SIGTERM itself (it drains, then exits).
set -eu

if [ "$#" -eq 0 ]; then
    set -- serve
fi
case "$1" in
    -*) set -- serve "$@" ;;
esac
exec botloom "$@"
