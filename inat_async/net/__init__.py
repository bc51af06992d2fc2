"""The network layer: one HTTP session with deadlines, caps and retries (http), the gate that
decides when a request may go (politeness), and the budgets shared by every harvest of a user
(budget), and the time those budgets allow for what is left (pace)."""
