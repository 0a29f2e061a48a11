"""The state store: which spec ran with which fingerprint, and how it went."""

from tunespec.state.store import Claim, RunRecord, StateStore, find_state_path

__all__ = ["Claim", "RunRecord", "StateStore", "find_state_path"]
