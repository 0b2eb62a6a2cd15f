#Requires -Version 5.1
<#
.SYNOPSIS
    Cleans up after the TestDriver demo: deletes the TestDrv service, optionally resets Driver Verifier and turns test signing off.

.DESCRIPTION
    Why there is no "sc stop TestDrv" here. Once started, TestDriver's two system threads
    wait for good in ExAcquireFastMutex. The driver sets DriverUnload and nothing holds a
    reference to its device, so "sc stop" does not fail and does not crash at once: the I/O
    manager calls the unload routine (UnloadDriver in the seed), whose IoDeleteDevice frees the
    device object and with it the device extension that holds the FAST_MUTEX. The driver is
    then unmapped, with both threads still waiting on an event inside freed pool. From then
    on the machine runs on undefined behaviour: a crash may come at any later time, or never.
    Only a reboot ends it cleanly: the service is demand-start and stays stopped after it.

    What this script does, each step only if needed and -WhatIf-able: sc.exe delete TestDrv
    (on a loaded driver this marks the service for deletion until the reboot, and a second
    call answers 1072, which the script reports and goes on), then what the switches ask for.
    The service's existence and state come from WMI, not from sc.exe's translated text.

    Assumption (not verified here, no Windows was available when this was written):
    verifier.exe /reset exits with 0 or 2 on success (2 read as "reboot required").

.PARAMETER ServiceName
    Service name. Default: TestDrv.

.PARAMETER ResetVerifier
    Run "verifier /reset".

.PARAMETER DisableTestSigning
    Run "bcdedit /set testsigning off".

.PARAMETER RemoveTestFolders
    Remove C:\Temp and C:\Temp2 when they are empty.

.PARAMETER TestFolder
    Folders for -RemoveTestFolders. Default: C:\Temp, C:\Temp2.

.PARAMETER Restart
    Restart the computer at the end.

.EXAMPLE
    PS C:\> .\scripts\Remove-TestDriver.ps1 -WhatIf -ResetVerifier -DisableTestSigning
    Shows every change, makes none.

.EXAMPLE
    PS C:\> .\scripts\Remove-TestDriver.ps1 -ResetVerifier -DisableTestSigning -RemoveTestFolders -Restart
    Undoes Initialize-TestVM.ps1 and Install-TestDriver.ps1 and reboots.
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [ValidatePattern('^[A-Za-z0-9_]+$')]
    [string]$ServiceName = 'TestDrv',

    [switch]$ResetVerifier,

    [switch]$DisableTestSigning,

    [switch]$RemoveTestFolders,

    [string[]]$TestFolder = @('C:\Temp', 'C:\Temp2'),

    [switch]$Restart
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

Import-Module -Name (Join-Path $PSScriptRoot 'TestDriver.Common.psm1') -Force

# DeleteService's answer for a service an earlier call already marked for deletion.
$ERROR_SERVICE_MARKED_FOR_DELETE = 1072

Assert-Administrator
$rebootNeeded = $false

# 1. The service
$service = Get-DriverService -Name $ServiceName
if ($null -eq $service) {
    Write-Host "Service ${ServiceName}: not installed, nothing to delete."
}
elseif (-not $service.IsKernelDriver) {
    throw ("A service named $ServiceName exists but is not a kernel driver ($($service.ServiceType)): it is not " +
        "TestDriver's, so it is not deleted. Pass the -ServiceName you installed TestDriver with.")
}
else {
    if (-not $service.Stopped) {
        Write-Warning ("$ServiceName is loaded (state $($service.State)). It is NOT stopped here: unloading would free " +
            'the fast mutex its two threads wait on and unmap the code they would return into, leaving them waiting ' +
            'forever on freed memory. The service is deleted at the next reboot.')
        $rebootNeeded = $true
    }
    if ($PSCmdlet.ShouldProcess($ServiceName, "sc.exe delete $ServiceName")) {
        $result = Invoke-NativeCommand -FilePath 'sc.exe' -ArgumentList @('delete', $ServiceName)
        Write-NativeOutput $result
        if ($result.ExitCode -eq $ERROR_SERVICE_MARKED_FOR_DELETE) {
            Write-Host ("Service ${ServiceName}: already marked for deletion (sc.exe delete: $ERROR_SERVICE_MARKED_FOR_DELETE, " +
                'ERROR_SERVICE_MARKED_FOR_DELETE). Windows removes it at the reboot.')
            $rebootNeeded = $true
        }
        elseif ($result.ExitCode -ne 0) {
            throw "sc.exe delete $ServiceName failed with exit code $($result.ExitCode)."
        }
    }
}

# 2. Driver Verifier
if ($ResetVerifier -and $PSCmdlet.ShouldProcess('Driver Verifier', 'verifier /reset')) {
    $result = Invoke-NativeCommand -FilePath 'verifier.exe' -ArgumentList @('/reset')
    Write-NativeOutput $result
    if (@(0, 2) -notcontains $result.ExitCode) {
        throw "verifier /reset failed with exit code $($result.ExitCode)."
    }
    $rebootNeeded = $true
}

# 3. Test signing
if ($DisableTestSigning -and $PSCmdlet.ShouldProcess('boot configuration {current}', 'bcdedit /set testsigning off')) {
    $result = Invoke-NativeCommand -FilePath 'bcdedit.exe' -ArgumentList @('/set', 'testsigning', 'off')
    Write-NativeOutput $result
    if ($result.ExitCode -ne 0) {
        throw "bcdedit /set testsigning off failed with exit code $($result.ExitCode)."
    }
    $rebootNeeded = $true
}

# 4. Folders
if ($RemoveTestFolders) {
    foreach ($folder in $TestFolder) {
        if (-not (Test-Path -LiteralPath $folder -PathType Container)) {
            continue
        }
        $items = @(Get-ChildItem -LiteralPath $folder -Force)
        if ($items.Count -gt 0) {
            Write-Warning "$folder is not empty ($($items.Count) item(s)): kept."
        }
        elseif ($PSCmdlet.ShouldProcess($folder, 'Remove empty folder')) {
            Remove-Item -LiteralPath $folder
            Write-Host "Folder ${folder}: removed."
        }
    }
}

if ($rebootNeeded) {
    Restart-ComputerIfRequested -Cmdlet $PSCmdlet -Restart:$Restart -Message 'REBOOT NEEDED to finish the cleanup: Restart-Computer.'
}
