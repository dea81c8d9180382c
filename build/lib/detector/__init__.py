"""Scheduled Elastic new_terms detection rules, run against Elasticsearch without Kibana."""

__version__ = "0.1.0"
