"""The XML schemas this server publishes at /schemas/<name> (dim.xsd, qualifieddc.xsd):
package data, read with importlib.resources by web/views.py."""
