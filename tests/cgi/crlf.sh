#!/bin/sh
# CRLF line ends in the header block.
printf 'Content-Type: text/plain\r\nX-Crlf: yes\r\n\r\ncrlf ends\r\n'
