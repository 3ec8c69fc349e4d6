#!/bin/sh
# Header names no HTTP token allows.
printf 'Content-Type: text/plain\nX Spaced Name: 1\nX@At: 2\nX-Ok: 3\n\nodd names\n'
