#!/bin/sh
# The baseline: one header, a blank line, a body.
printf 'Content-Type: text/plain\n\nplain output\n'
