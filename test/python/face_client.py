"""A face.v1.FaceService client on Debian's python3-grpcio, with stubs generated from proto/.

Usage: face_client.py HOST:PORT SCENARIO [ARGS...]; prints one JSON document with what it saw.
"""
import concurrent.futures
import json
import os
import queue
import sys
import time

import grpc

from face.v1 import face_pb2, face_pb2_grpc


def frames_from(q):
    """Request iterator of a Sync stream fed from a queue; None ends it."""
    while True:
        item = q.get()
        if item is None:
            return
        yield item


def oversized(stub, photo_path):
    """One channel: an open Sync stream, a 40 MB Register, then the stream and a new call again."""
    photo = open(photo_path, "rb").read()
    q = queue.Queue()
    answers = stub.Sync(frames_from(q))
    seen = {}
    q.put(face_pb2.SyncRequest(image=photo, frame_id="1"))
    seen["frame1"] = next(answers).frame_id
    try:
        stub.Register(face_pb2.RegisterRequest(identifier="huge", image=bytes(40 * 1024 * 1024)), timeout=60)
        seen["register"] = "OK"
    except grpc.RpcError as e:
        seen["register"] = e.code().name
    q.put(face_pb2.SyncRequest(image=photo, frame_id="2"))
    answer = next(answers)
    seen["frame2"] = answer.frame_id
    seen["frame2_faces"] = len(answer.faces)
    q.put(None)
    seen["stream_rest"] = len(list(answers))
    seen["list_users"] = list(stub.ListUsers(face_pb2.ListUsersRequest(), timeout=30).identifiers)
    return seen


def session(stub, faces_dir):
    """Register, recognize the person and a stranger, then stream the clip through Sync with a bad frame."""
    read = lambda path: open(os.path.join(faces_dir, path), "rb").read()
    seen = {}
    registered = stub.Register(face_pb2.RegisterRequest(identifier="obama", image=read("face_recognition/obama.jpg")), timeout=60)
    seen["registered"] = [registered.identifier, registered.created]
    stub.Register(face_pb2.RegisterRequest(identifier="lin-manuel-miranda", image=read("video/lin-manuel-miranda.png")), timeout=60)
    known = stub.Recognize(face_pb2.RecognizeRequest(image=read("face_recognition/obama2.jpg")), timeout=60)
    seen["known"] = [known.matched, known.identifier]
    stranger = stub.Recognize(face_pb2.RecognizeRequest(image=read("face_recognition/biden.jpg")), timeout=60)
    seen["stranger"] = [stranger.matched, stranger.identifier]
    try:
        stub.Recognize(face_pb2.RecognizeRequest(image=b"not an image"), timeout=60)
        seen["bad_image"] = "OK"
    except grpc.RpcError as e:
        seen["bad_image"] = e.code().name
    frames = sorted(f for f in os.listdir(os.path.join(faces_dir, "video/frames")) if f.endswith(".jpg"))
    requests = [face_pb2.SyncRequest(image=read("video/frames/" + f), frame_id=f) for f in frames]
    requests.insert(3, face_pb2.SyncRequest(image=b"garbage", frame_id="bad"))
    answers = list(stub.Sync(iter(requests), timeout=300))
    seen["sync_order"] = [a.frame_id for a in answers] == [r.frame_id for r in requests]
    seen["sync_bad_frame"] = [a.error.code for a in answers if a.frame_id == "bad"]
    seen["sync_identities"] = sorted({f.identifier for a in answers for f in a.faces if f.identifier})
    return seen


def long_deadlines(stub, photo_path):
    """Recognize with deadlines of 30 days and a year, as a client that wants none may set them: the codes answered."""
    image = open(photo_path, "rb").read()
    codes = {}
    for name, seconds in (("30 days", 30 * 86400), ("a year", 365 * 86400)):
        try:
            codes[name] = "OK" if stub.Recognize(face_pb2.RecognizeRequest(image=image), timeout=seconds).face.score > 0 else "no face"
        except grpc.RpcError as e:
            codes[name] = e.code().name
    return codes


def open_during_shutdown(stub, photo_path, ready_path):
    """An open Sync stream that sends one frame and then nothing; creates ready_path once answered, then waits for the stream's end."""
    q = queue.Queue()
    answers = stub.Sync(frames_from(q))
    q.put(face_pb2.SyncRequest(image=open(photo_path, "rb").read(), frame_id="1"))
    seen = {"frame1": next(answers).frame_id}
    open(ready_path, "w").close()
    try:
        seen["rest"] = len(list(answers))
        seen["status"] = "OK"
    except grpc.RpcError as e:
        seen["status"] = e.code().name
        seen["details"] = e.details()
    q.put(None)
    return seen


def over_budget(stub, size, compression="none"):
    """A Register of SIZE bytes (sent gzip-compressed with COMPRESSION gzip) while the server's receive
    budget is full, then a small call on the same channel."""
    seen = {}
    sent_as = grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression
    try:
        stub.Register(face_pb2.RegisterRequest(identifier="large", image=bytes(int(size))), timeout=60, compression=sent_as)
        seen["register"] = "OK"
    except grpc.RpcError as e:
        seen["register"] = e.code().name
        seen["retry_after"] = dict(e.trailing_metadata() or ()).get("retry-after")
    seen["list_users"] = list(stub.ListUsers(face_pb2.ListUsersRequest(), timeout=30).identifiers)
    return seen


def refusal(error):
    """A refused call's code and its retry-after, as grpcio reports them."""
    retry_after = dict(error.trailing_metadata() or ()).get("retry-after", "")
    return (error.code().name + " " + retry_after).strip()


def many_streams(stub, photo_path, count):
    """COUNT Sync streams open at once on one channel (a gateway for COUNT cameras), each sending a
    frame: how many were answered within 20 s, how the others failed, and what a unary call on the
    same channel gets while they are open."""
    photo = open(photo_path, "rb").read()
    streams = []
    for i in range(int(count)):
        q = queue.Queue()
        streams.append((q, stub.Sync(frames_from(q))))
    for i, (q, _) in enumerate(streams):
        q.put(face_pb2.SyncRequest(image=photo, frame_id=str(i)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(streams)) as pool:
        futures = [pool.submit(next, answers) for _, answers in streams]
        done, not_done = concurrent.futures.wait(futures, timeout=20)
        answered = sum(1 for f in done if f.exception() is None)
        failed = sorted({refusal(f.exception()) for f in done if f.exception() is not None})
        try:
            stub.ListUsers(face_pb2.ListUsersRequest(), timeout=10)
            unary = "OK"
        except grpc.RpcError as e:
            unary = refusal(e)
        for _, answers in streams:
            answers.cancel()
        for q, _ in streams:
            q.put(None)
    return {"answered": answered, "failed": failed, "unanswered": len(not_done), "unary": unary}


def without_key(stub):
    """A call without the API key the server requires."""
    try:
        stub.ListUsers(face_pb2.ListUsersRequest(), timeout=10)
        return "OK"
    except grpc.RpcError as e:
        return refusal(e)


def rate_limited(stub, count):
    """COUNT calls in a row on one channel: the codes seen, in order, each once in a row."""
    codes = []
    for _ in range(int(count)):
        try:
            stub.ListUsers(face_pb2.ListUsersRequest(), timeout=10)
            code = "OK"
        except grpc.RpcError as e:
            code = refusal(e)
        if not codes or codes[-1] != code:
            codes.append(code)
    return codes


def recognize_for(stub, photo_path, seconds):
    """Recognize PHOTO one call after another on one channel for SECONDS: how many were answered,
    the codes of those that were not, and the answered ones' median and slowest time in ms."""
    photo = open(photo_path, "rb").read()
    times, failed = [], []
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        began = time.monotonic()
        try:
            stub.Recognize(face_pb2.RecognizeRequest(image=photo), timeout=30)
            times.append((time.monotonic() - began) * 1000)
        except grpc.RpcError as e:
            failed.append(refusal(e))
    times.sort()
    return {"answered": len(times), "failed": sorted(set(failed)), "p50_ms": times[len(times) // 2] if times else None, "max_ms": times[-1] if times else None}


def calls_apart(stub, count, pause_seconds):
    """COUNT calls on one channel, PAUSE_SECONDS apart: each one's code."""
    codes = []
    for i in range(int(count)):
        if i:
            time.sleep(float(pause_seconds))
        try:
            stub.ListUsers(face_pb2.ListUsersRequest(), timeout=10)
            codes.append("OK")
        except grpc.RpcError as e:
            codes.append(e.code().name)
    return codes


def unknown_method(channel):
    """A method the service does not have, and a call after it on the same channel."""
    nope = channel.unary_unary("/face.v1.FaceService/Nope", request_serializer=lambda m: m, response_deserializer=lambda b: b)
    try:
        nope(b"", timeout=10)
        seen = {"nope": "OK"}
    except grpc.RpcError as e:
        seen = {"nope": e.code().name}
    stub = face_pb2_grpc.FaceServiceStub(channel)
    seen["list_users"] = len(stub.ListUsers(face_pb2.ListUsersRequest(), timeout=10).identifiers)
    return seen


def export_all(stub, identifier):
    """ExportUser of IDENTIFIER page after page, on a channel with grpcio's default 4 MiB receive limit."""
    pages, faces, detections = 0, [], 0
    token = ""
    try:
        while True:
            page = stub.ExportUser(face_pb2.ExportUserRequest(identifier=identifier, page_token=token), timeout=60)
            pages += 1
            faces += [len(f.image) for f in page.faces]
            detections += len(page.detections)
            token = page.next_page_token
            if not token:
                break
    except grpc.RpcError as e:
        return {"status": e.code().name, "pages": pages}
    return {"status": "OK", "pages": pages, "image_bytes": sorted(faces), "detections": detections}


SCENARIOS = {"oversized": oversized, "session": session, "long_deadlines": long_deadlines, "open_during_shutdown": open_during_shutdown, "over_budget": over_budget, "many_streams": many_streams, "without_key": without_key, "rate_limited": rate_limited, "recognize_for": recognize_for, "calls_apart": calls_apart}
CHANNEL_SCENARIOS = {"unknown_method": unknown_method}
# Run on a channel with grpcio's own limits (4 MiB received), as a client written without us would.
DEFAULT_CHANNEL_SCENARIOS = {"export_all": export_all}


def main():
    target, scenario, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    options = [] if scenario in DEFAULT_CHANNEL_SCENARIOS else [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(target, options=options) as channel:
        if scenario in CHANNEL_SCENARIOS:
            print(json.dumps(CHANNEL_SCENARIOS[scenario](channel, *args)))
            return
        stub = face_pb2_grpc.FaceServiceStub(channel)
        print(json.dumps({**SCENARIOS, **DEFAULT_CHANNEL_SCENARIOS}[scenario](stub, *args)))


if __name__ == "__main__":
    main()
