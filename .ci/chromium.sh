# Sourced by .ci/run (bash): Chromium for the dashboard's browser tests (tests/dashboard).
#
# Playwright drives Debian's Chromium (/usr/bin/chromium; Playwright's own browser download is
# not used). Installed from the Debian packages if missing (as root). Exports
# PRIVFIN_REQUIRE_CHROMIUM=1 once it is there: the browser tests then run and fail rather than
# skip. Without root or apt-get they skip with "Chromium not installed" (allowed, with
# PRIVFIN_STRICT_SKIPS=1, like a missing PostgreSQL).

if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Chromium (apt-get) for the dashboard's browser tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ -x /usr/bin/chromium ]; then
    export PRIVFIN_REQUIRE_CHROMIUM=1
    echo "Chromium for the dashboard tests: $(/usr/bin/chromium --version 2>/dev/null)" >&2
else
    echo "Chromium not available: the dashboard's browser tests are skipped" >&2
fi
