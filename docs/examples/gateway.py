"""A minimal riskwatch gateway (protocol v1) in a few lines of paho-mqtt: status with last will, telemetry.

RW_SITE=DY-SH01 RW_GATEWAY=DY-SH01-GW1 RW_PASSWORD=... python docs/examples/gateway.py
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
client.will_set(f"{base}/status", json.dumps({"gw": gw, "state": "offline"}), qos=1, retain=True)
client.connect(os.environ.get("RW_MQTT_HOST", "127.0.0.1"), int(os.environ.get("RW_MQTT_PORT", "1883")))
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
