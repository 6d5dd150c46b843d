"""Layer 2: pure data and codecs for everything vrepo stores (no I/O).

Ids, chunk refs, snapshots, manifests, transaction logs, ref records and ``repo.json``, each
with a versioned header, compression and an integrity checksum (see `envelope`).
"""

from vrepo.format.chunk_ref import ChunkRef
from vrepo.format.envelope import (
    FORMAT_VERSION,
    FileType,
    decode_binary,
    decode_json_record,
    encode_binary,
    encode_json_record,
)
from vrepo.format.ids import (
    ID_BYTES,
    ID_CHARS,
    array_to_ids,
    bytes_to_id,
    id_to_bytes,
    ids_to_array,
    is_valid_id,
    new_id,
)
from vrepo.format.manifest import Manifest
from vrepo.format.ref_record import (
    MAX_SEQ,
    REF_ACTIONS,
    REF_KINDS,
    RefRecord,
    decode_ref_record,
    encode_ref_record,
    parse_ref,
    ref_dir,
    ref_record_key,
    seq_from_record_key,
    validate_ref_name,
)
from vrepo.format.repo_info import (
    REPO_INFO_KEY,
    RepoConfig,
    RepoInfo,
    decode_repo_info,
    encode_repo_info,
)
from vrepo.format.snapshot import (
    LooseObject,
    ManifestRef,
    NodeSnapshot,
    Snapshot,
    decode_snapshot,
    encode_snapshot,
)
from vrepo.format.transaction import (
    ArrayChunkChanges,
    TransactionLog,
    decode_transaction_log,
    encode_transaction_log,
    union_of_logs,
)
from vrepo.format.turn import (
    TURNS_PREFIX,
    TurnClaim,
    decode_turn_claim,
    encode_turn_claim,
    turn_dir,
    turn_key,
)

__all__ = [
    "FORMAT_VERSION",
    "ID_BYTES",
    "ID_CHARS",
    "MAX_SEQ",
    "REF_ACTIONS",
    "REF_KINDS",
    "REPO_INFO_KEY",
    "TURNS_PREFIX",
    "ArrayChunkChanges",
    "ChunkRef",
    "FileType",
    "LooseObject",
    "Manifest",
    "ManifestRef",
    "NodeSnapshot",
    "RefRecord",
    "RepoConfig",
    "RepoInfo",
    "Snapshot",
    "TransactionLog",
    "TurnClaim",
    "array_to_ids",
    "bytes_to_id",
    "decode_binary",
    "decode_json_record",
    "decode_ref_record",
    "decode_repo_info",
    "decode_snapshot",
    "decode_transaction_log",
    "decode_turn_claim",
    "encode_binary",
    "encode_json_record",
    "encode_ref_record",
    "encode_repo_info",
    "encode_snapshot",
    "encode_transaction_log",
    "encode_turn_claim",
    "id_to_bytes",
    "ids_to_array",
    "is_valid_id",
    "new_id",
    "parse_ref",
    "ref_dir",
    "ref_record_key",
    "seq_from_record_key",
    "turn_dir",
    "turn_key",
    "union_of_logs",
    "validate_ref_name",
]
