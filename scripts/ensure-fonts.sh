#!/usr/bin/env bash
# Fonts for the finished ads' text (services/video/src/video/finishing/text.py): Noto for
# Latin, Arabic, Hebrew, Devanagari and Thai, Noto CJK, and Noto Color Emoji. Installed with
# apt-get where we may (root on Debian/Ubuntu, as in CI); elsewhere the renderer falls back to
# DejaVu (and shows U+FFFD for what it cannot draw), and this says how to get them.
set -euo pipefail
PACKAGES=(fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji)

if [[ -f /usr/share/fonts/truetype/noto/NotoSans-Bold.ttf \
   && -f /usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc \
   && -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]]; then
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "fonts: installing ${PACKAGES[*]} for the ads' captions"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  exit 0
fi
echo "fonts: Noto fonts not found; install ${PACKAGES[*]} (or your system's Noto fonts)"
echo "fonts: without them captions in Arabic, CJK or emoji fall back to DejaVu"
