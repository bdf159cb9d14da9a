"""Pulumi program for leased GPU capacity (Blazar lease + GPU node); run by `aidetect infra gpu`."""
