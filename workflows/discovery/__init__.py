"""People's own API tokens found at Atlassian, and their replacement by service accounts."""
