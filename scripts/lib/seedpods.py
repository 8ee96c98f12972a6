"""Creates N pods in a test API server (one keep-alive connection), shaped
like real ones: labels, a last-applied annotation, env, command, probes,
volume mounts. Usage: seedpods.py URL N"""
import http.client
import json
import sys
import urllib.parse

url, n = sys.argv[1], int(sys.argv[2])
u = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(u.hostname, u.port)
for i in range(n):
    name = "bench-%05d" % i
    container = {
        "name": "app", "image": "registry.example.com/app:1.2.3",
        "command": ["/app", "--serve", "--port=8080"],
        "env": [{"name": "VAR_%d" % k, "value": "value-%d-%d" % (i, k)} for k in range(10)],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
    }
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "bench", "pod-template-hash": "abc%05d" % (i % 100)},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps({"spec": {"containers": [container]}})},
        },
        "spec": {"containers": [container], "nodeName": "node-%03d" % (i % 200),
                 "volumes": [{"name": "config", "configMap": {"name": "app"}}]},
    }
    body = json.dumps(pod)
    conn.request("POST", "/api/v1/namespaces/default/pods", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    if r.status not in (200, 201):
        sys.exit("creating %s: HTTP %d" % (name, r.status))
