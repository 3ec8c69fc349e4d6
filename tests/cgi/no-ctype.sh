#!/bin/sh
# No Content-Type at all.
printf 'X-Equiv: no content type\n\nbody without a type\n'
