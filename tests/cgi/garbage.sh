#!/bin/sh
# A header block that is no header block.
printf 'this is not a header line\n\nbody\n'
