"""Resource Manager calls the steps make, through the real azure-mgmt clients."""
