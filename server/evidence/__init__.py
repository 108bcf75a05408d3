"""Gate evidence: passage images uploaded by gate controllers, checked, stored, served."""
