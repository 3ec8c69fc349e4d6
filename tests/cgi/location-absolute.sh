#!/bin/sh
# An absolute URL: 302 to the client.
printf 'Location: http://elsewhere.example/landing?x=1\nContent-Type: text/plain\n\nmoved\n'
