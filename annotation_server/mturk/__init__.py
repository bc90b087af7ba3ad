"""Crowd platforms for the annotation server: Amazon Mechanical Turk and Prolific.

- `client`: the boto3 `mturk` client (sandbox by default, endpoint overridable) with throttling retries.
- `publish`: HITs with an ExternalQuestion pointing at `/mturk/<study>`, qualifications, cost estimate.
- `review`: sync submitted assignments, approve/reject by rule, bonuses, expire/delete; idempotent.
- `models`: the tables recording HITs, MTurk assignments, actions and Prolific sessions (no secrets).
- `entry`: the `/mturk/<study>` pages MTurk frames (preview, work, submit back to MTurk).
- `prolific`: the `/prolific/<study>` entry and the redirect to the study's completion URL.
"""
