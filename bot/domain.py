"""The domain's words that more than one layer speaks, defined once.

A leaf module: it imports nothing from the bot, so the policy rules, the
inventory, the service and the templates can all name the same things.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """What a VM does, as far as the guardrails care."""

    DOMAIN_CONTROLLER = "domain_controller"
    READ_ONLY_DOMAIN_CONTROLLER = "read_only_domain_controller"
    CLUSTER_NODE = "cluster_node"
    SQL_SERVER = "sql_server"
    SQL_AG_REPLICA = "sql_ag_replica"
    EXCHANGE_SERVER = "exchange_server"
    EXCHANGE_DAG_MEMBER = "exchange_dag_member"
    DFSR_MEMBER = "dfsr_member"
    FILE_SERVER = "file_server"
    CERTIFICATE_AUTHORITY = "certificate_authority"
    WEB = "web"
    APP = "app"
    OTHER = "other"
