#!/usr/bin/env bash
# Refresh the page's screenshots in docs/screenshots/: desktop (1280x800) and phone (390x844), light and dark.
# They are what the browser test of the page's look saves in test-artifacts/ (a room with messages since yesterday,
# two members, grouped messages, day separators), copied once the test passes; then review and commit them.
LOCK=test source "$(dirname "${BASH_SOURCE[0]}")/setup-env.sh"
cd "$ROOT"
rm -f test-artifacts/page-{desktop,phone}-{light,dark}.png
"$VENV/bin/pytest" -q -p no:cacheprovider \
    "tests/server/browser/test_page_look.py::test_a_room_fills_the_window_groups_by_sender_and_day_and_passes_axe"
mkdir -p docs/screenshots
for shot in desktop-light desktop-dark phone-light phone-dark; do
    cp "test-artifacts/page-$shot.png" "docs/screenshots/$shot.png"
done
echo "docs/screenshots/: $(ls docs/screenshots | tr '\n' ' ')"
