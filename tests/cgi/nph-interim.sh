#!/bin/sh
# Interim 1xx responses before the final one.
printf 'HTTP/1.1 100 Continue\r\n\r\n'
printf 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n'
printf 'HTTP/1.1 201 Created Here\r\nContent-Type: text/plain\r\nX-Nph: interim\r\n\r\nafter two interim responses\n'
