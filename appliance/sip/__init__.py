"""SIP: messages, transports, transactions, auth, registrar, dialogs, B2BUA, trunks."""
