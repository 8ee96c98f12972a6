"""Creates D Deployments with R ReplicaSets each in a test API server (one
keep-alive connection): revisions 1..R, the newest the Deployment's
current one, all scaled to zero. Then times single GETs of ReplicaSets, as a
kubectl loop would make them. Usage: seedreplicasets.py URL D R
Prints: "<seconds per single GET> <seconds per single DELETE>" (the
DELETEs on 50 extra ReplicaSets of namespace "scratch")."""
import http.client
import json
import sys
import time
import urllib.parse

url, d, r = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
u = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(u.hostname, u.port)


def post(path, obj):
    conn.request("POST", path, json.dumps(obj), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    body = resp.read()
    if resp.status not in (200, 201):
        sys.exit("POST %s: HTTP %d %s" % (path, resp.status, body[:200]))
    return json.loads(body)


def template(app, rev):
    return {"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "registry.example.com/app:%d" % rev}]}}


for i in range(d):
    app = "app-%03d" % i
    dep = post("/apis/apps/v1/namespaces/default/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app, "annotations": {"deployment.kubernetes.io/revision": str(r)}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": app}}, "template": template(app, r)},
    })
    for rev in range(1, r + 1):
        t = template(app, rev)
        t["metadata"]["labels"]["pod-template-hash"] = "h%d" % rev
        post("/apis/apps/v1/namespaces/default/replicasets", {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "%s-h%d" % (app, rev),
                         "annotations": {"deployment.kubernetes.io/revision": str(rev)},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app,
                                              "uid": dep["metadata"]["uid"], "controller": True}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": app, "pod-template-hash": "h%d" % rev}},
                     "template": t},
        })

n = 500
t0 = time.monotonic()
for k in range(n):
    conn.request("GET", "/apis/apps/v1/namespaces/default/replicasets/app-%03d-h%d" % (k % d, 1 + k % r))
    resp = conn.getresponse()
    resp.read()
get = (time.monotonic() - t0) / n
post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scratch"}})
for k in range(50):
    post("/apis/apps/v1/namespaces/scratch/replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "x-%d" % k},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"x": "x"}},
                 "template": {"metadata": {"labels": {"x": "x"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
t0 = time.monotonic()
for k in range(50):
    conn.request("DELETE", "/apis/apps/v1/namespaces/scratch/replicasets/x-%d" % k,
                 json.dumps({"propagationPolicy": "Background"}), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
print("%.6f %.6f" % (get, (time.monotonic() - t0) / 50))
