#!/usr/bin/env python3
"""A pynetdicom C-STORE SCU for interoperability tests: sends each file in its own
transfer syntax over one association and reports, as one JSON object per line on
stdout, what the SCP answered.

Usage: store_scu.py HOST PORT [--called AE] [--calling AE] [--new-uids]
                    [--uid-from-meta] FILE...

  --new-uids       give every instance a fresh SOP Instance UID (the same real file can
                   then be stored in several transfer syntaxes)
  --uid-from-meta  fill an empty SOP Class or Instance UID from the file meta group
                   (pynetdicom needs them for the command; Study/Series stay as they are)

Lines: {"file": ..., "transfer_syntax": ..., "sop_instance_uid": ...,
        "status": int or null, "error": str or null}
and first {"association": "accepted"|"rejected"|"aborted"|"failed"}.
Exit status 0 when the association was accepted, 2 otherwise.
"""
import argparse
import json
import sys

from pydicom import dcmread
from pydicom.uid import generate_uid
from pynetdicom import AE


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--called", default="SPINEWATCH")
    p.add_argument("--calling", default="PYNETDICOM")
    p.add_argument("--new-uids", action="store_true")
    p.add_argument("--uid-from-meta", action="store_true")
    p.add_argument("files", nargs="+")
    args = p.parse_args()

    datasets = []
    for f in args.files:
        ds = dcmread(f)
        if args.uid_from_meta and not ds.get("SOPClassUID"):
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        if args.uid_from_meta and not ds.get("SOPInstanceUID"):
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        if args.new_uids:
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        datasets.append((f, ds))

    ae = AE(ae_title=args.calling)
    ae.acse_timeout = 5
    ae.dimse_timeout = 10
    ae.network_timeout = 10
    contexts = {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for _, ds in datasets}
    for sop_class, ts in sorted(contexts):
        ae.add_requested_context(sop_class, ts)

    assoc = ae.associate(args.host, args.port, ae_title=args.called)
    if assoc.is_established:
        state = "accepted"
    elif assoc.is_rejected:
        state = "rejected"
    elif assoc.is_aborted:
        state = "aborted"
    else:
        state = "failed"
    print(json.dumps({"association": state}), flush=True)
    if not assoc.is_established:
        return 2

    accepted = {
        (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
        for cx in assoc.accepted_contexts
    }
    for f, ds in datasets:
        ts = str(ds.file_meta.TransferSyntaxUID)
        out = {
            "file": f,
            "transfer_syntax": ts,
            "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
            "status": None,
            "error": None,
        }
        if (str(ds.SOPClassUID), ts) not in accepted:
            out["error"] = "no accepted presentation context"
        else:
            try:
                status = assoc.send_c_store(ds)
                if status and "Status" in status:
                    out["status"] = int(status.Status)
                else:
                    out["error"] = "no response"
            except Exception as e:  # report, do not hide: the test asserts on it
                out["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(out), flush=True)
    assoc.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
