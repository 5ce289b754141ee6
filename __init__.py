"""Meihua (梅花): a GraphQL CRM backend with permission-aware real-time collaboration."""

__version__ = "0.1.0"
