"""Hand-written fakes of the services Watchfloor talks to, run as real local servers where they are HTTP."""
