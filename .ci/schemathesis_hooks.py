"""Schemathesis hooks of .ci/schemathesis.sh: strategies for the custom string formats the
OpenAPI document of sip-settings names (crates/http/src/v1/doc.rs), which JSON Schema cannot
spell as a pattern:

* `pkcs10-pem`: a certificate signing request with a valid signature. The CSRs are made by
  openssl at test time, in the run's scratch directory (SIP_SETTINGS_CSR_DIR);
* `date-time-within-a-week`: an RFC 3339 time in the future, at most a week ahead (the DND and
  temporary rule `until`);
* `sip-settings-cursor`: a `next` cursor of /v1/me/calls (hex of `micros|direction|call-id`).
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
