#!/bin/sh
# An NPH script writes the whole HTTP response itself.
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Nph: plain\r\n\r\nnph plain body\n'
