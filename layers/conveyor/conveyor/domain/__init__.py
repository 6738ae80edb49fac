"""Models, rules, errors and the ports stages talk to: no boto3, no I/O."""
