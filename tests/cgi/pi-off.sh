#!/bin/sh
# PATH_INFO as the script sees it.
printf 'Content-Type: text/plain\n\nPATH_INFO=[%s]\nPATH_TRANSLATED=[%s]\n' "${PATH_INFO-<unset>}" "${PATH_TRANSLATED-<unset>}"
