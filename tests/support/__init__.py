"""What the tests share: drivers of the stand-ins, database readers, the secret sweep, fakes.

Test modules import from here, never from each other."""
