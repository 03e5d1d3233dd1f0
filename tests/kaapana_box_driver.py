"""Kaapana in a box: runs inside ``unshare --mount --net`` (tests/kaapana_box.py starts it), so
Kaapana's service names, ports and mount paths can be the platform's own without touching
the machine: a private loopback, a private /etc/hosts, and the run-data volume bound at both
/kaapana/mounted/workflows/data (where Airflow sees it) and, through each pod's own mounts,
/kaapana/mounted/data (where the pods see it).

Real: Airflow 2.11 (``dag.test()``, through radpath.airflow_local, which also runs what a
run triggers), Kaapana 0.6.0's plugin, kaapanapy and task_api from the snapshot, Orthanc as
the PACS (its DICOMweb behind the dicom-web-filter name, its DIMSE as CTP), radpath's
images' and Kaapana's images' commands. Stand-ins: Kubernetes (tests/kaapana_pods/...),
Keycloak, OpenSearch, MinIO's STS (tests/kaapana_box_services.py) and moto as its S3.

Usage: ``kaapana_box_driver.py SPEC.json`` (written by tests/kaapana_box.py); prints one
JSON line with what the runs left: each run's outcome, the PACS's series (with the AE
titles CTP saw), the bucket's objects, the run folders left, the pod log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
import kaapana_box_services as services  # noqa: E402

from radpath.orthanc import LocalOrthanc  # noqa: E402

RESULT = "kaapana-box-result: "


def sh(*command: str) -> None:
    subprocess.run(command, check=True)


def bind(source: Path, target: str) -> None:
    source.mkdir(parents=True, exist_ok=True)
    os.makedirs(target, exist_ok=True)
    sh("mount", "--bind", str(source), target)


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    box = json.loads(Path(spec["box_config"]).read_text())
    root = Path(spec["root"])
    sh("ip", "link", "set", "lo", "up")
    # Kaapana's paths, private to this mount namespace (a tmpfs holds the mount points).
    sh("mount", "-t", "tmpfs", "box", "/kaapana")
    bind(Path(box["claims"]["workflow-data-pv-claim"]), "/kaapana/mounted/workflows/data")
    bind(root / "uploads", "/kaapana/app/uploads")
    hosts = root / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"{s['ip']} {s['host']}\n" for s in box["services"]))
    sh("mount", "--bind", str(hosts), "/etc/hosts")

    service = {s["name"]: s for s in box["services"]}
    with LocalOrthanc(storage=root / "pacs", dicom_port=service["ctp"]["port"]) as pacs:
        started = start_services(box, service, pacs, root)
        for path in spec.get("seed", []):
            requests.post(f"{pacs.url}/instances", data=Path(path).read_bytes(), timeout=60).raise_for_status()
        runs = [run_dag(spec["airflow_env"], dag_id, conf) for dag_id, conf in spec["runs"]]
        result = {"runs": runs, "pacs": pacs_series(pacs), "bucket": bucket_objects(started["s3"], box),
                  "run_folders": sorted(p.name for p in Path(box["claims"]["workflow-data-pv-claim"]).iterdir()
                                        if p.is_dir()),
                  "pods": [json.loads(line) for line in Path(box["pod_log"]).read_text().splitlines()]
                  if Path(box["pod_log"]).exists() else []}
        started["moto"].terminate()
    print(RESULT + json.dumps(result), flush=True)
    return 0


def start_services(box: dict, service: dict, pacs: LocalOrthanc, root: Path) -> dict:
    services.serve(services.keycloak(box["users"], box["client_secret"]), service["keycloak"]["ip"],
                   service["keycloak"]["port"])
    services.serve(services.dicom_web_filter(pacs.dicomweb_url), service["dicom-web-filter"]["ip"],
                   service["dicom-web-filter"]["port"])
    key, cert = root / "opensearch.key", root / "opensearch.crt"
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
       f"/CN={service['opensearch']['host']}", "-keyout", str(key), "-out", str(cert))
    services.serve(services.opensearch(pacs.dicomweb_url), service["opensearch"]["ip"], service["opensearch"]["port"],
                   (str(cert), str(key)))
    moto_port = 5129
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s3 = f"http://127.0.0.1:{moto_port}"
    for _ in range(100):
        try:
            requests.get(s3, timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    services.serve(services.minio(s3), service["minio"]["ip"], service["minio"]["port"])
    import boto3

    client = boto3.client("s3", endpoint_url=s3, aws_access_key_id="box", aws_secret_access_key="box",
                          region_name="us-east-1")
    client.create_bucket(Bucket=box["bucket"])
    return {"moto": moto, "s3": client}


def run_dag(env: dict, dag_id: str, conf: dict) -> dict:
    done = subprocess.run([sys.executable, "-m", "radpath.airflow_local", dag_id, json.dumps(conf)], env=env,
                          capture_output=True, text=True, timeout=3000)
    lines = (done.stdout + done.stderr).splitlines()
    outcome = next((json.loads(line.split("radpath-airflow-result: ", 1)[1]) for line in lines
                    if line.startswith("radpath-airflow-result: ")), {"error": "no result"})
    return {"outcome": outcome, "log": lines[-4000:], "exit": done.returncode}


def pacs_series(pacs: LocalOrthanc) -> list[dict]:
    found = []
    for series_id in requests.get(f"{pacs.url}/series", timeout=30).json():
        series = requests.get(f"{pacs.url}/series/{series_id}", timeout=30).json()
        instance = series["Instances"][0]
        metadata = requests.get(f"{pacs.url}/instances/{instance}/metadata?expand", timeout=30).json()
        tags = requests.get(f"{pacs.url}/instances/{instance}/simplified-tags", timeout=30).json()
        found.append({"modality": tags.get("Modality"), "study": tags.get("StudyInstanceUID"),
                      "series": tags.get("SeriesInstanceUID"), "instances": len(series["Instances"]),
                      "called_ae": metadata.get("CalledAET"), "calling_ae": metadata.get("RemoteAET"),
                      "origin": metadata.get("Origin")})
    return found


def bucket_objects(client, box: dict) -> list[str]:
    listing = client.list_objects_v2(Bucket=box["bucket"])
    return sorted(item["Key"] for item in listing.get("Contents", []))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
