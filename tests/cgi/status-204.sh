#!/bin/sh
# 204 with a body the server must not send.
printf 'Status: 204 No Content\nContent-Type: text/plain\n\nthis body must vanish\n'
