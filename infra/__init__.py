"""Infrastructure as code for aidetect on Chameleon Cloud.

Terraform (infra/terraform) owns the standing cluster, Pulumi (infra/pulumi) the leased GPU node, and
infra/site.yaml is the one configuration both read. `aidetect infra --help` drives them.
"""
