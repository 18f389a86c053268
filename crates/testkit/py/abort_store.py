#!/usr/bin/env python3
"""A peer that stops in the middle of an instance, for tests of an SCP's spool: it
associates (pynetdicom), sends a C-STORE-RQ command and the first fragments of the data
set (never the last one), then waits for a line on stdin and stops, either with an
A-ABORT or by closing the connection without a word.

Usage: abort_store.py HOST PORT FILE [--called AE] [--calling AE] [--mode abort|drop]
                      [--at-least BYTES]

  --at-least  after the first half of the data set, send zero bytes until more than
              BYTES are sent: an SCP that holds the start of an instance in memory
              has then written its partial file

Prints {"sent": bytes, "of": total} once the partial instance is on the wire (the test
then checks that the SCP holds a partial file), then, after the stdin line,
{"stopped": mode}. Exit status 0, or 2 when the association was not accepted.

The P-DATA-TF PDUs are written by hand (PS3.8 9.3.5) because no SCU library sends half
an instance on purpose.
"""
import argparse
import json
import struct
import sys

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.dsutils import encode

# PDV fragments well under the SCP's smallest maximum PDU length (16 KiB).
FRAGMENT = 8192


def p_data(context_id, is_command, is_last, data):
    """One P-DATA-TF PDU carrying one presentation data value."""
    header = (1 if is_command else 0) | (2 if is_last else 0)
    pdv = struct.pack(">IBB", len(data) + 2, context_id, header) + data
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv


def store_rq(sop_class, sop_instance):
    """A C-STORE-RQ command set, Implicit VR Little Endian (PS3.7 9.3.1.1)."""
    cmd = Dataset()
    cmd.AffectedSOPClassUID = sop_class
    cmd.CommandField = 0x0001
    cmd.MessageID = 1
    cmd.Priority = 0
    cmd.CommandDataSetType = 0x0000
    cmd.AffectedSOPInstanceUID = sop_instance
    body = encode(cmd, True, True)
    # (0000,0000) CommandGroupLength UL, implicit VR: tag, length 4, value.
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("file")
    p.add_argument("--called", default="SPINEWATCH")
    p.add_argument("--calling", default="PYNETDICOM")
    p.add_argument("--mode", choices=["abort", "drop"], default="abort")
    p.add_argument("--at-least", type=int, default=0)
    args = p.parse_args()

    ds = dcmread(args.file)
    ts = ds.file_meta.TransferSyntaxUID
    sop_class, sop_instance = str(ds.SOPClassUID), str(ds.SOPInstanceUID)
    data = encode(ds, ts.is_implicit_VR, ts.is_little_endian)

    ae = AE(ae_title=args.calling)
    ae.acse_timeout = 5
    ae.network_timeout = 10
    ae.add_requested_context(sop_class, str(ts))
    assoc = ae.associate(args.host, args.port, ae_title=args.called)
    if not assoc.is_established:
        print(json.dumps({"association": "not accepted"}), flush=True)
        return 2
    context_id = assoc.accepted_contexts[0].context_id

    sock = assoc.dul.socket
    sock.send(p_data(context_id, True, True, store_rq(sop_class, sop_instance)))
    half = len(data) // 2
    sent = 0
    while sent < half:
        chunk = data[sent : min(sent + FRAGMENT, half)]
        sock.send(p_data(context_id, False, False, chunk))
        sent += len(chunk)
    filler = bytes(FRAGMENT)
    while sent <= args.at_least:
        sock.send(p_data(context_id, False, False, filler))
        sent += len(filler)
    print(json.dumps({"sent": sent, "of": len(data)}), flush=True)

    sys.stdin.readline()
    if args.mode == "abort":
        assoc.abort()
    else:
        sock.close()
        assoc.kill()
    print(json.dumps({"stopped": args.mode}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
