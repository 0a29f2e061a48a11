"""Every diagnostic code tunespec emits, in one table, so codes stay stable and documented.

Ranges: TS0xx CLI and environment, TS1xx spec, TS2xx data, TS3xx backend, TS4xx state
and runs, TS5xx artifacts. A plugin uses its backend's range with its own prefix
(e.g. ``K8S301``) or the generic TS3xx codes below.
"""

CODES: dict[str, str] = {
    # CLI and environment
    "TS001": "path given on the command line does not exist",
    "TS002": "no spec files found",
    "TS003": "confirmation required (no TTY and no --yes)",
    "TS004": "internal error (a bug in tunespec or a plugin)",
    # Spec: loading
    "TS100": "file cannot be read, is not a regular file, is a link out of the folder, or is not UTF-8 text",
    "TS101": "YAML syntax error",
    "TS102": "duplicate key",
    "TS103": "YAML tag not allowed",
    "TS104": "YAML aliases expand too much (alias bomb: over 20,000 nodes or 1 MiB of text) or refer to themselves",
    "TS105": "empty spec file or document",
    "TS106": "environment variable not set and no default",
    "TS107": "malformed ${env:...} interpolation",
    "TS108": "document is not a mapping",
    "TS109": "character not allowed in a spec (NUL, control, bidirectional override, byte order mark inside)",
    # Spec: schema
    "TS110": "unknown key",
    "TS111": "missing required key",
    "TS112": "wrong type",
    "TS113": "value out of range",
    "TS114": "value not one of the allowed choices",
    "TS115": "conflicting fields",
    "TS116": "invalid value",
    "TS117": "unsupported apiVersion or kind",
    "TS118": "duplicate spec name",
    "TS119": "unknown backend",
    # Spec: limits and failures while loading
    "TS120": "spec exceeds a size limit (1 MiB file, 10,000 lines, 32,768-character lines, 100 documents, "
    "nesting 64 deep, 20,000 nodes, 1,024-character keys)",
    "TS121": "unexpected error while loading one spec file (a bug; the other files are still checked)",
    "TS122": "more problems in one spec file than are shown (the first 50 are; this counts the rest)",
    # Data
    "TS200": "data source not found or unreadable",
    "TS201": "malformed JSON",
    "TS202": "invalid UTF-8",
    "TS203": "record does not match the data format",
    "TS204": "data format not recognised",
    "TS205": "empty data file",
    "TS206": "conversation has no model turn",
    "TS207": "roles do not alternate",
    "TS208": "last turn is not the model's",
    "TS209": "empty part or message",
    "TS210": "unknown role",
    "TS211": "MIME type not allowed for this modality",
    "TS212": "too many parts or files of a kind in one example",
    "TS213": "file too large",
    "TS214": "referenced file does not exist",
    "TS215": "example longer than the maximum sequence length",
    "TS216": "too many examples in a split",
    "TS217": "data file too large",
    "TS218": "duplicate examples between train and validation",
    "TS219": "byte order mark at start of file",
    "TS220": "truncated last line",
    "TS221": "line too long",
    "TS222": "inline data not accepted by this backend",
    "TS223": "file reference location (URI scheme) not accepted",
    # Backend
    "TS300": "backend not available (dependencies missing)",
    "TS301": "base model not supported by this backend",
    "TS302": "method not supported by this backend or model",
    "TS303": "spec field not supported by this backend",
    "TS304": "spec field mapped with a change of meaning",
    "TS305": "region or location not supported",
    "TS306": "model cannot be resolved or loaded",
    "TS307": "credentials not found",
    "TS308": "remote service error",
    "TS309": "cluster unreachable or lacks resources",
    "TS310": "model retired",
    "TS311": "training failed",
    "TS312": "customer-managed encryption key (CMEK) not supported for this model",
    "TS313": "backend option required for this spec is missing",
    # State and runs
    "TS400": "run already in flight",
    "TS401": "run not found",
    "TS402": "state store unreadable",
    "TS403": "run failed",
    "TS404": "run cancelled",
    # Artifacts
    "TS500": "manifest missing or invalid",
    "TS501": "checksum mismatch",
    "TS502": "output file missing",
    "TS503": "unlisted file in run directory",
}
