#!/bin/sh
# Headers but no blank line after them.
printf 'Content-Type: text/plain\nX-Equiv: 1\n'
