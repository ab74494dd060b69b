"""A minimal riskwatch gateway (protocol v1) in a few lines of paho-mqtt: status with last will, telemetry.

MQTT over TLS: the broker's certificate is verified against RW_CAFILE (the deployment's CA) and its host
name; RW_CERTFILE / RW_KEYFILE add the gateway's own client certificate when the broker asks for one.

RW_SITE=DY-SH01 RW_GATEWAY=DY-SH01-GW1 RW_PASSWORD=... RW_CAFILE=ca.pem \
    RW_MQTT_HOST=broker.example.org python docs/examples/minimal_gateway.py
"""

import json
import os
import random
import time

import paho.mqtt.client as mqtt

site, gw = os.environ["RW_SITE"], os.environ["RW_GATEWAY"]
base = f"rw/v1/{site}/{gw}"
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=gw, protocol=mqtt.MQTTv5)
client.username_pw_set(gw, os.environ["RW_PASSWORD"])  # the user name is the gateway id
client.tls_set(  # verifies the broker's certificate and host name; never call tls_insecure_set(True)
    ca_certs=os.environ["RW_CAFILE"],
    certfile=os.environ.get("RW_CERTFILE"),
    keyfile=os.environ.get("RW_KEYFILE"),
)
client.will_set(f"{base}/status", json.dumps({"gw": gw, "state": "offline"}), qos=1, retain=True)
client.connect(os.environ.get("RW_MQTT_HOST", "127.0.0.1"), int(os.environ.get("RW_MQTT_PORT", "8883")))
client.loop_start()
client.publish(
    f"{base}/status", json.dumps({"gw": gw, "state": "online", "t": time.time()}), qos=1, retain=True
)
seq = int(time.time() * 1000)  # increasing across restarts: (gw, seq) is how duplicates are removed
while True:
    now = time.time()
    readings = [{"s": "DYSH-T1-GT01", "v": round(random.uniform(0, 5), 2), "t": now, "q": 0}]
    client.publish(f"{base}/telemetry", json.dumps({"gw": gw, "seq": seq, "readings": readings}), qos=1)
    seq += 1
    time.sleep(1.0)
