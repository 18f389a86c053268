#!/usr/bin/env python3
"""A pynetdicom C-STORE SCU that pushes several studies at once, as a PACS does: one
process and one association per study, every instance in its own transfer syntax. It
reports, one JSON object per line on stdout (flushed at once, so that a test can act
while the pushes go on), what the SCP answered.

Processes, not threads: pynetdicom associations driven from several threads of one
process now and then miss a C-STORE response and wait for the DIMSE timeout
(pydicom/pynetdicom#850).

Usage: push_studies.py HOST PORT [--called AE] [--calling AE] [--dimse-timeout S]
                       [--retry-unanswered] DIR...

--dimse-timeout bounds the wait for each C-STORE response (default 30 s). When the SCP
dies, pynetdicom sometimes notices only when that wait ends: a test that kills the SCP
sets it short.

--retry-unanswered: once per study, when an instance gets no response (pynetdicom missed
it, or the SCP did not answer), associate again and send the rest, that instance
included, as a PACS retries. A {"study": i, "retry": FILE} line says so, and the
instances sent after it carry "retried": true.

Each DIR is one study: every *.dcm file below it is sent (other files, such as
ground_truth.json, are not).

Lines, each with "study": the DIR's index on the command line:
  {"study": i, "association": "accepted"|"rejected"|"aborted"|"failed"}  first
  {"study": i, "file": ..., "sop_instance_uid": ..., "status": int or null,
   "error": str or null}                                                 per instance
  {"study": i, "retry": FILE}            with --retry-unanswered, before a new association
  {"study": i, "done": true, "released": bool}                           last
Exit status 0 when every instance was answered 0x0000, 2 otherwise.
"""
import argparse
import json
import multiprocessing
import os
import sys

from pydicom import dcmread
from pynetdicom import AE

# Set in each child: keeps the lines of different studies whole.
_print_lock = None


def emit(obj):
    with _print_lock:
        print(json.dumps(obj), flush=True)


def study_files(root):
    files = []
    for dirpath, _, names in os.walk(root):
        files.extend(os.path.join(dirpath, n) for n in names if n.endswith(".dcm"))
    return sorted(files)


def push(index, root, args, lock):
    """Pushes one study; the process exits 0 when every instance was answered 0x0000."""
    global _print_lock
    _print_lock = lock
    sys.exit(0 if push_study(index, root, args) else 2)


def associate(index, args, headers):
    """An association for a study's instances, or None; reports how it went."""
    ae = AE(ae_title=args.calling)
    ae.acse_timeout = 10
    ae.dimse_timeout = args.dimse_timeout
    ae.network_timeout = 30
    contexts = {(str(h.SOPClassUID), str(h.file_meta.TransferSyntaxUID)) for h in headers}
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
    emit({"study": index, "association": state})
    return assoc if assoc.is_established else None


def push_study(index, root, args):
    files = study_files(root)
    headers = [dcmread(f, stop_before_pixels=True) for f in files]
    assoc = associate(index, args, headers)
    if assoc is None:
        emit({"study": index, "done": True, "released": False})
        return False

    all_success = True
    retries_left = 1 if args.retry_unanswered else 0
    i = 0
    retried = False
    while i < len(files):
        f, h = files[i], headers[i]
        out = {
            "study": index,
            "file": f,
            "sop_instance_uid": str(h.SOPInstanceUID),
            "status": None,
            "error": None,
        }
        try:
            status = assoc.send_c_store(dcmread(f))
            if status and "Status" in status:
                out["status"] = int(status.Status)
            else:
                out["error"] = "no response"
        except Exception as e:  # report, do not hide: the test asserts on it
            out["error"] = f"{type(e).__name__}: {e}"
        if out["error"] == "no response" and retries_left > 0:
            # pynetdicom now and then misses a response that came (the SCP's log shows
            # it answered), then aborts: a PACS sends the rest again on a new
            # association, this instance included.
            retries_left -= 1
            retried = True
            emit({"study": index, "retry": f})
            assoc = associate(index, args, headers)
            if assoc is None:
                emit({"study": index, "done": True, "released": False})
                return False
            continue
        if retried:
            out["retried"] = True
        all_success = all_success and out["status"] == 0
        emit(out)
        i += 1
    released = assoc.is_established
    if released:
        assoc.release()
    emit({"study": index, "done": True, "released": released})
    return all_success


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--called", default="SPINEWATCH")
    p.add_argument("--calling", default="PYNETDICOM")
    p.add_argument("--dimse-timeout", type=float, default=30)
    p.add_argument("--retry-unanswered", action="store_true")
    p.add_argument("dirs", nargs="+")
    args = p.parse_args()

    lock = multiprocessing.Lock()
    procs = [
        multiprocessing.Process(target=push, args=(i, d, args, lock))
        for i, d in enumerate(args.dirs)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return 0 if all(p.exitcode == 0 for p in procs) else 2


if __name__ == "__main__":
    sys.exit(main())
