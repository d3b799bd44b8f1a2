"""Generated from proto/ by clients/python/scripts/gen_stubs.sh. Do not edit."""
