#!/bin/sh
# Headers, then body text, with no blank line between.
printf 'Content-Type: text/plain\nthe body, too early\n'
