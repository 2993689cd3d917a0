"""Schemathesis hooks of .ci/schemathesis.sh: strategies for the custom string formats the
OpenAPI document of sip-settings names (crates/http/src/v1/doc.rs), which JSON Schema cannot
spell as a pattern:

* `pkcs10-pem`: a certificate signing request with a valid signature. The CSRs are made by
  openssl at test time, in the run's scratch directory (SIP_SETTINGS_CSR_DIR);
* `date-time-within-a-week`: an RFC 3339 time in the future, at most a week ahead (the DND and
  temporary rule `until`);
* `sip-settings-cursor`: a `next` cursor of /v1/me/calls (hex of `micros|direction|call-id`);
* `http-if-match`: the `If-Match` syntax (the header also has a pattern; schemathesis' coverage
  phase draws header values from a pattern only when it needs letters and digits alone).

And one `map_case` hook: a generated call record (POST /v1/service/calls and /calls/batch) in
positive mode gets `stop` not before `start` and `duration` within them, which the document says
in words because JSON Schema cannot compare two fields.
"""

import datetime
import glob
import os

import schemathesis
from hypothesis import strategies as st

_csrs = [open(p).read() for p in sorted(glob.glob(os.path.join(os.environ.get("SIP_SETTINGS_CSR_DIR", "."), "*.csr")))]
if _csrs:
    schemathesis.openapi.format("pkcs10-pem", st.sampled_from(_csrs))


def _within_a_week(seconds: int) -> str:
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


# Two minutes to six days ahead: in the future and within the week when the request arrives.
schemathesis.openapi.format(
    "date-time-within-a-week", st.integers(min_value=120, max_value=6 * 86400).map(_within_a_week)
)

schemathesis.openapi.format(
    "sip-settings-cursor",
    st.tuples(
        st.integers(min_value=0, max_value=4_102_444_800_000_000),
        st.sampled_from([0, 1]),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789@.-", max_size=40),
    ).map(lambda t: f"{t[0]}|{t[1]}|{t[2]}".encode().hex()),
)

# `http-if-match`: `*` or a list of strong or weak entity tags (visible ASCII but `"`).
_etag = st.text(alphabet=[chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"'], max_size=20)
_tag = st.one_of(_etag.map(lambda t: f'"{t}"'), _etag.map(lambda t: f'W/"{t}"'))
schemathesis.openapi.format(
    "http-if-match",
    st.one_of(st.just("*"), st.lists(_tag, min_size=1, max_size=3).map(", ".join)),
)


def _time(value):
    try:
        return datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _within_its_times(record):
    """A call record whose `stop` is not before `start` and whose `duration` fits between them,
    which the document states in words (JSON Schema cannot compare two fields)."""
    if not isinstance(record, dict):
        return
    start, stop = _time(record.get("start")), _time(record.get("stop"))
    if start is None or stop is None:
        return
    if stop < start:
        record["start"], record["stop"] = record["stop"], record["start"]
        start, stop = stop, start
    duration = record.get("duration")
    span = int((stop - start).total_seconds())
    if isinstance(duration, int) and not isinstance(duration, bool) and duration > span + 1:
        record["duration"] = span


@schemathesis.hook
def map_case(context, case):
    meta = getattr(case, "meta", None)
    mode = getattr(getattr(meta, "generation", None), "mode", None)
    if mode is None or not mode.is_positive:
        return case
    if case.operation.path == "/v1/service/calls":
        _within_its_times(case.body)
    elif case.operation.path == "/v1/service/calls/batch" and isinstance(case.body, dict):
        for record in case.body.get("calls") or []:
            _within_its_times(record)
    return case
