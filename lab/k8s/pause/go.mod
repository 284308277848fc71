module netmedic.lab/pause

go 1.26
