"""python -m pipeline_lib.domains DOMAIN ['{param: value, ...}']: the Environment contract's probes
(``contract.check_contract``) on one domain instance, without a config (a new domain's first check; the config
check runs the same probes on every configured environment)."""
import sys

import yaml

from pipeline_lib.domains import make_env
from pipeline_lib.domains.contract import check_contract

if len(sys.argv) not in (2, 3):
    sys.exit("usage: python -m pipeline_lib.domains DOMAIN ['{param: value, ...}']")
domain, params = sys.argv[1], (yaml.safe_load(sys.argv[2]) if len(sys.argv) == 3 else None) or {}
try:
    check_contract(make_env(domain, params))
except ValueError as error:  # a ContractError included: an unknown domain, bad parameters or a wrong answer
    sys.exit(f"{domain} {params}: {error}")
print(f"{domain} {params}: the Environment contract holds on the probed objects")
