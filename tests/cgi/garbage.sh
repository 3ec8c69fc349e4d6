#!/bin/sh
# A header block that is no header block. The request body (if any) is read
# first: fcgiwrap writes all of it to the script before it reads any output,
# and reports a script that has already gone as its own 502.
cat > /dev/null
printf 'this is not a header line\n\nbody\n'
