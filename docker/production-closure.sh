#!/bin/sh
# production-closure <workspace dir>: copies into /out what that workspace needs at run time:
# the packages of its production dependency closure (as `npm ls --omit=dev` resolves it) and,
# for each workspace package it links to, that package's package.json and compiled dist/.
set -eu
npm ls --omit=dev --all --parseable --workspace "$1" > /tmp/closure
mkdir -p /out
while read -r path; do
  relative="${path#"$PWD"}"; relative="${relative#/}"
  [ -n "$relative" ] || continue
  cp -a --parents "$relative" /out/
  if [ -L "$relative" ]; then
    target="$(realpath --relative-to="$PWD" "$relative")"
    mkdir -p "/out/$target"
    cp -a "$target/package.json" "$target/dist" "/out/$target/"
    rm -f "/out/$target/dist/.tsbuildinfo"
  fi
done < /tmp/closure
