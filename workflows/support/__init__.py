"""Small collaborators the workflows share: the call gate, the deadline timer, the order's
outbox and publisher. Each owns one concern and the state that concern needs."""
