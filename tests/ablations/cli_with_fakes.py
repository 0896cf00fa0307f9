"""`python -m ablations` with two fake claims registered, for the Ctrl-C test:
`python -m tests.ablations.cli_with_fakes run --only 'fake.*' --out DIR`. fake.a-fast finishes at
once; fake.b-slow touches the file named by $FAKE_STARTED, then sleeps until interrupted."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ablations.__main__ import main
from ablations.registry import UnknownClaimError, register
from makemore.cli import run_guarded
from tests.ablations.fakes import Fake, fake_claim

register(fake_claim("fake.a-fast"))
register(fake_claim("fake.b-slow", Fake(sleep=600, started=Path(os.environ["FAKE_STARTED"]))))

if __name__ == "__main__":
    sys.exit(run_guarded(main, extra_errors=(UnknownClaimError,)))
