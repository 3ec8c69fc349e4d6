#!/bin/sh
# Complains on stderr, then fails before any header.
echo "EQUIV-STDERR exit-early $SCRIPT_NAME" >&2
exit 3
