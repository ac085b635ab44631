"""`boxoffice demo`: a live sales simulator with scripted incidents."""
