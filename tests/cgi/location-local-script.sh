#!/bin/sh
# An internal redirect to another script behind the same gateway, with a query.
dir=${SCRIPT_NAME%/*}
printf 'Location: %s/env.pl/redirected?from=location\n\n' "$dir"
